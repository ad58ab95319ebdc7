"""Lower a validated Spec to a ResolvedModel: names, shapes and both frameworks' argument values."""

import hashlib
import json

from compilers import ir
from compilers.naming import class_name, layer_names
from compilers.torch_spelling import ACTIVATION_MODULES, init_line
from dsl import layers as dsl_layers
from dsl.shapes import LayerShape, infer_shapes, same_padding
from dsl.spec import Spec
from dsl.tables import LayerRow, WeightRow
from dsl.training import SGD, Training

# The recipe's keys in the order the package prints them (runtime.common.recipe.Recipe's fields).
RECIPE_ORDER = (
    "optimizer",
    "batch_size",
    "epochs",
    "validation_split",
    "split",
    "schedule",
    "early_stopping",
    "horizontal_flip",
    "translate",
    "seed",
    "precision",
)
BATCHNORM_WEIGHTS = (("gamma", "ones"), ("beta", "zeros"), ("moving_mean", "zeros"), ("moving_variance", "ones"))

OUTPUTS = {"softmax": "probabilities", "log_softmax": "log_probabilities"}


def normalized_json(spec: Spec) -> str:
    """The spec with every default filled in, as stable JSON."""
    return json.dumps(spec.model_dump(mode="json"), indent=2) + "\n"


def lower(spec: Spec, spec_file: str) -> ir.ResolvedModel:
    """Everything the templates print for `spec`; `spec_file` is the file name shown in headers."""
    shapes = infer_shapes(spec)
    kinds_and_layers = spec.layer_list()
    names = layer_names([kind for kind, _ in kinds_and_layers])
    ops = tuple(_lower_layer(name, layer, shape) for name, (_, layer), shape in zip(names, kinds_and_layers, shapes))
    spec_json = normalized_json(spec)
    return ir.ResolvedModel(
        name=spec.name,
        class_name=class_name(spec.name),
        spec_file=spec_file,
        spec_sha256=hashlib.sha256(spec_json.encode()).hexdigest(),
        spec_json=spec_json,
        input_shape=tuple(spec.input),
        ops=ops,
        runtime_layers=tuple(sorted({op.torch_class for op in ops if isinstance(op, ir.BatchNormOp)})),
        init_lines=tuple(line for layer, name in zip(spec.layer_list(), names) for line in _init_lines(name, layer[1])),
        trainable=sum(shape.trainable for shape in shapes),
        non_trainable=sum(shape.non_trainable for shape in shapes),
        output=OUTPUTS.get(_final_activation(spec), "logits"),
        recipe=lower_training(spec.training or Training(optimizer=SGD(name="sgd"))),
        layers=tuple(_layer_row(op, kind, shape) for op, (kind, _), shape in zip(ops, kinds_and_layers, shapes)),
        weights=tuple(_weight_rows(names, kinds_and_layers, shapes)),
    )


def lower_training(training: Training) -> dict:
    """The training section with every default filled in, flat as runtime.common.recipe.Recipe takes it."""
    values = training.model_dump(mode="json")
    values |= values.pop("augmentation")
    split = values["split"]
    values["split"] = None if split is None else (split["train"], split["val"], split["test"])
    return {key: values[key] for key in RECIPE_ORDER}


def _kernel_shape(layer, input_shape) -> tuple[int, ...]:
    """A Dense kernel's (in, units) or a Conv2D kernel's (height, width, in, filters): Keras's layout."""
    if isinstance(layer, dsl_layers.Conv2D):
        return (*layer.kernel_size, input_shape[-1], layer.filters)
    return (input_shape[0], layer.units)


def _layer_row(op: ir.Op, kind: str, shape: LayerShape) -> LayerRow:
    return LayerRow(op.name, kind, op.output_attr, shape.output_shape, shape.trainable, shape.non_trainable)


def _weight_rows(names: list[str], kinds_and_layers, shapes: list[LayerShape]):
    """Every weight in Keras's order; those after a Flatten of a feature map, up to its first Dense, say so."""
    flattened = None
    for name, (_, layer), shape in zip(names, kinds_and_layers, shapes):
        if isinstance(layer, dsl_layers.Flatten):
            flattened = shape.input_shape if len(shape.input_shape) == 3 else None
        elif isinstance(layer, (dsl_layers.Dense, dsl_layers.Conv2D)):
            kernel_shape = _kernel_shape(layer, shape.input_shape)
            yield WeightRow(name, "kernel", kernel_shape, layer.kernel_initializer, flattened)
            if layer.use_bias:
                yield WeightRow(name, "bias", kernel_shape[-1:], layer.bias_initializer, None)
            if isinstance(layer, dsl_layers.Dense):
                flattened = None
        elif isinstance(layer, dsl_layers.BatchNorm):
            for variable, initializer in BATCHNORM_WEIGHTS:
                yield WeightRow(name, variable, shape.input_shape[-1:], initializer, flattened)


def _final_activation(spec: Spec) -> str:
    """The activation that produces the model's output, looking through Dropout."""
    for _, layer in reversed(spec.layer_list()):
        if isinstance(layer, dsl_layers.ActivationLayer):
            return layer.name
        if isinstance(layer, (dsl_layers.Dense, dsl_layers.Conv2D)):
            return layer.activation
        if not isinstance(layer, dsl_layers.Dropout):
            return "none"
    return "none"


def _activation_fields(name: str, activation: str) -> dict:
    if activation == "none":
        return {"attrs": (name,), "keras_activation": None, "torch_activation": None}
    return {
        "attrs": (name, f"{name}_act"),
        "keras_activation": activation,
        "torch_activation": ACTIVATION_MODULES[activation],
    }


def _init_lines(name: str, layer) -> list[str]:
    """The PyTorch statements initialising a Dense or Conv2D layer's tensors; none for other layers."""
    if not isinstance(layer, (dsl_layers.Dense, dsl_layers.Conv2D)):
        return []
    lines = [init_line(layer.kernel_initializer, f"self.{name}.weight", is_matrix=True)]
    if layer.use_bias:
        lines.append(init_line(layer.bias_initializer, f"self.{name}.bias", is_matrix=False))
    return lines


def _init_fields(layer) -> dict:
    return {
        "kernel_initializer": layer.kernel_initializer,
        "bias_initializer": layer.bias_initializer,
    }


def _padding_fields(name: str, shape: LayerShape, window, strides, padding: str) -> dict:
    """TensorFlow's `same` padding as PyTorch needs it: symmetric in the layer, else a pad module first."""
    if padding == "valid":
        return {"keras_padding": "valid", "torch_padding": (0, 0), "torch_pad": None, "attrs": (name,)}
    (top, bottom), (left, right) = (same_padding(n, k, s) for n, k, s in zip(shape.input_shape, window, strides))
    if top == bottom and left == right:
        return {"keras_padding": "same", "torch_padding": (top, left), "torch_pad": None, "attrs": (name,)}
    pads = (left, right, top, bottom)
    return {"keras_padding": "same", "torch_padding": (0, 0), "torch_pad": pads, "attrs": (f"{name}_pad", name)}


def _lower_conv(name: str, layer: dsl_layers.Conv2D, shape: LayerShape) -> ir.Conv2DOp:
    padding = _padding_fields(name, shape, layer.kernel_size, layer.strides, layer.padding)
    activation = _activation_fields(name, layer.activation)
    attrs = padding.pop("attrs")[:-1] + activation.pop("attrs")
    return ir.Conv2DOp(
        name=name,
        attrs=attrs,
        in_channels=shape.input_shape[2],
        filters=layer.filters,
        kernel_size=layer.kernel_size,
        strides=layer.strides,
        use_bias=layer.use_bias,
        **padding,
        **activation,
        **_init_fields(layer),
    )


def _lower_pool(name: str, layer: dsl_layers.MaxPool, shape: LayerShape) -> ir.MaxPoolOp:
    strides = layer.strides or layer.pool_size
    padding = _padding_fields(name, shape, layer.pool_size, strides, layer.padding)
    return ir.MaxPoolOp(name=name, pool_size=layer.pool_size, strides=strides, **padding)


def _lower_dense(name: str, layer: dsl_layers.Dense, shape: LayerShape) -> ir.DenseOp:
    return ir.DenseOp(
        name=name,
        in_features=shape.input_shape[0],
        units=layer.units,
        use_bias=layer.use_bias,
        **_activation_fields(name, layer.activation),
        **_init_fields(layer),
    )


def _lower_batchnorm(name: str, layer: dsl_layers.BatchNorm, shape: LayerShape) -> ir.BatchNormOp:
    # PyTorch weighs the new batch statistic by `momentum`; Keras (and the DSL) weighs the old one.
    return ir.BatchNormOp(
        name=name,
        attrs=(name,),
        features=shape.input_shape[-1],
        torch_class="BiasedVarBatchNorm2d" if len(shape.input_shape) == 3 else "BiasedVarBatchNorm1d",
        keras_momentum=layer.momentum,
        torch_momentum=round(1.0 - layer.momentum, 12),
        epsilon=layer.epsilon,
    )


def _lower_layer(name: str, layer, shape: LayerShape) -> ir.Op:
    if isinstance(layer, dsl_layers.Conv2D):
        return _lower_conv(name, layer, shape)
    if isinstance(layer, dsl_layers.MaxPool):
        return _lower_pool(name, layer, shape)
    if isinstance(layer, dsl_layers.Dense):
        return _lower_dense(name, layer, shape)
    if isinstance(layer, dsl_layers.BatchNorm):
        return _lower_batchnorm(name, layer, shape)
    if isinstance(layer, dsl_layers.Dropout):
        return ir.DropoutOp(name=name, attrs=(name,), rate=layer.rate)
    if isinstance(layer, dsl_layers.Flatten):
        return ir.FlattenOp(name=name, attrs=(name,))
    function = layer.name
    return ir.ActivationOp(
        name=name, attrs=(name,), keras_activation=function, torch_activation=ACTIVATION_MODULES[function]
    )
