"""Lower a validated Spec to a ResolvedModel: names, shapes and both frameworks' argument values."""

import hashlib
import json

from compilers import ir
from compilers.naming import Activations, class_name, layer_names, projection_names, shortcut_variable
from compilers.torch_spelling import ACTIVATION_MODULES, init_line
from dsl import layers as dsl_layers
from dsl.shapes import LayerShape, effective_window, infer_shapes, projection, same_padding
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
    "random_erasing",
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
    walk: list[tuple] = []
    ops = _lower_list(spec.layer_list(), shapes, "", Activations(), walk)
    spec_json = normalized_json(spec)
    return ir.ResolvedModel(
        name=spec.name,
        class_name=class_name(spec.name),
        spec_file=spec_file,
        spec_sha256=hashlib.sha256(spec_json.encode()).hexdigest(),
        spec_json=spec_json,
        input_shape=tuple(spec.input),
        ops=ops,
        runtime_layers=tuple(sorted({name for op in ops for name in op.runtime_layers})),
        init_lines=tuple(line for name, _, layer, _ in walk for line in _init_lines(name, layer)),
        trainable=sum(shape.trainable for shape in shapes),
        non_trainable=sum(shape.non_trainable for shape in shapes),
        output=OUTPUTS.get(_final_activation(spec), "logits"),
        recipe=lower_training(spec.training or Training(optimizer=SGD(name="sgd"))),
        layers=tuple(_layer_row(op, kind, shape) for op, (_, kind, _, shape) in zip(ir.flat_ops(ops), walk)),
        weights=tuple(_weight_rows(walk)),
    )


def _lower_list(kinds_and_layers, shapes: list[LayerShape], within: str, activations: Activations, walk: list):
    """The ops of a layer list (the spec's, or a Residual's `within` it), named in `forward` order; each layer's
    (name, kind, DSL layer, shape) appended to `walk` after its parts: the order of ir.flat_ops, of the LAYERS and
    WEIGHTS tables and of the PyTorch submodules."""
    ops = []
    names = layer_names([kind for kind, _ in kinds_and_layers], within)
    for name, (kind, layer), shape in zip(names, kinds_and_layers, shapes, strict=True):
        if isinstance(layer, dsl_layers.Residual):
            op = _lower_residual(name, layer, shape, activations, walk)
        else:
            own = isinstance(layer, KERNELS) and layer.activation != "none"
            op = _lower_layer(name or activations.next(), layer, shape, activations.next() if own else None)
        walk.append((op.name, kind, layer, shape))
        ops.append(op)
    return tuple(ops)


def lower_training(training: Training) -> dict:
    """The training section with every default filled in, flat as runtime.common.recipe.Recipe takes it."""
    values = training.model_dump(mode="json")
    values |= {"random_erasing": None} | values.pop("augmentation")  # the normalised spec leaves it out when off
    split = values["split"]
    values["split"] = None if split is None else (split["train"], split["val"], split["test"])
    return {key: values[key] for key in RECIPE_ORDER}


KERNELS = (dsl_layers.Dense, dsl_layers.Conv2D, dsl_layers.DepthwiseConv2D, dsl_layers.SeparableConv2D)


def _kernel_shapes(layer, input_shape) -> dict[str, tuple[int, ...]]:
    """A layer's kernels by Keras's variable name, in Keras's layout: (in, units) for Dense, (height, width, in /
    groups, filters) for Conv2D, (height, width, in, multiplier) for a depthwise kernel, (1, 1, in * multiplier,
    filters) for a pointwise one."""
    if isinstance(layer, dsl_layers.Dense):
        return {"kernel": (input_shape[0], layer.units)}
    channels = input_shape[-1]
    if isinstance(layer, dsl_layers.Conv2D):
        return {"kernel": (*layer.kernel_size, channels // layer.groups, layer.filters)}
    depthwise = (*layer.kernel_size, channels, layer.depth_multiplier)
    if isinstance(layer, dsl_layers.DepthwiseConv2D):
        return {"kernel": depthwise}
    pointwise = (1, 1, channels * layer.depth_multiplier, layer.filters)
    return {"depthwise_kernel": depthwise, "pointwise_kernel": pointwise}


def _layer_row(op: ir.Op, kind: str, shape: LayerShape) -> LayerRow:
    if isinstance(op, ir.ResidualOp):  # its weights are in its layers' rows
        return LayerRow(op.name, kind, op.output_attr, shape.output_shape, 0, 0)
    return LayerRow(op.name, kind, op.output_attr, shape.output_shape, shape.trainable, shape.non_trainable)


def _weight_rows(walk):
    """Every weight in Keras's order; those after a Flatten of a feature map, up to its first Dense, say so."""
    flattened = None
    for name, _, layer, shape in walk:
        if isinstance(layer, dsl_layers.Flatten):
            flattened = shape.input_shape if len(shape.input_shape) == 3 else None
        elif isinstance(layer, KERNELS):
            for variable, kernel_shape in _kernel_shapes(layer, shape.input_shape).items():
                yield WeightRow(name, variable, kernel_shape, layer.kernel_initializer, flattened)
            if layer.use_bias:
                yield WeightRow(name, "bias", shape.output_shape[-1:], layer.bias_initializer, None)
            if isinstance(layer, dsl_layers.Dense):
                flattened = None
        elif isinstance(layer, dsl_layers.BatchNorm):
            for variable, initializer in BATCHNORM_WEIGHTS:
                yield WeightRow(name, variable, shape.input_shape[-1:], initializer, flattened)
        elif isinstance(layer, dsl_layers.LayerNorm):
            for variable, initializer in BATCHNORM_WEIGHTS[:2]:
                if layer.scale if variable == "gamma" else layer.center:
                    yield WeightRow(name, variable, shape.input_shape[-1:], initializer, flattened)


def _final_activation(spec: Spec) -> str:
    """The activation that produces the model's output, looking through Dropout."""
    for _, layer in reversed(spec.layer_list()):
        if isinstance(layer, dsl_layers.ActivationLayer):
            return layer.name
        if isinstance(layer, (*KERNELS, dsl_layers.Residual)):
            return layer.activation
        if not isinstance(layer, dsl_layers.Dropout):
            return "none"
    return "none"


def _activation_fields(name: str, activation: str, activation_attr: str | None) -> dict:
    if activation == "none":
        return {"attrs": (name,), "keras_activation": None, "torch_activation": None}
    return {
        "attrs": (name, activation_attr),
        "keras_activation": activation,
        "torch_activation": ACTIVATION_MODULES[activation],
    }


def _init_lines(name: str, layer) -> list[str]:
    """The PyTorch statements initialising a layer's kernels and bias; none for layers without them."""
    if not isinstance(layer, KERNELS):
        return []
    if isinstance(layer, dsl_layers.SeparableConv2D):
        depthwise, bias = f"self.{name}.depthwise.weight", f"self.{name}.pointwise.bias"
        lines = [init_line(layer.kernel_initializer, depthwise, is_matrix=True, multiplier=layer.depth_multiplier)]
        lines.append(init_line(layer.kernel_initializer, f"self.{name}.pointwise.weight", is_matrix=True))
    else:
        multiplier = layer.depth_multiplier if isinstance(layer, dsl_layers.DepthwiseConv2D) else None
        bias = f"self.{name}.bias"
        lines = [init_line(layer.kernel_initializer, f"self.{name}.weight", is_matrix=True, multiplier=multiplier)]
    if layer.use_bias:
        lines.append(init_line(layer.bias_initializer, bias, is_matrix=False))
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


def _conv_fields(name: str, layer, shape: LayerShape, activation_attr: str | None) -> dict:
    """What every convolution shares: window, padding (of the dilated kernel's span), activation, initialisers."""
    span = effective_window(layer.kernel_size, layer.dilation_rate)
    padding = _padding_fields(name, shape, span, layer.strides, layer.padding)
    activation = _activation_fields(name, layer.activation, activation_attr)
    attrs = padding.pop("attrs")[:-1] + activation.pop("attrs")
    return {
        "name": name,
        "attrs": attrs,
        "in_channels": shape.input_shape[2],
        "kernel_size": layer.kernel_size,
        "strides": layer.strides,
        "dilation": layer.dilation_rate,
        "use_bias": layer.use_bias,
        **padding,
        **activation,
        **_init_fields(layer),
    }


def _lower_conv(name: str, layer, shape: LayerShape, activation_attr: str | None) -> ir.Op:
    fields = _conv_fields(name, layer, shape, activation_attr)
    if isinstance(layer, dsl_layers.Conv2D):
        return ir.Conv2DOp(filters=layer.filters, groups=layer.groups, **fields)
    if isinstance(layer, dsl_layers.DepthwiseConv2D):
        return ir.DepthwiseConv2DOp(depth_multiplier=layer.depth_multiplier, **fields)
    return ir.SeparableConv2DOp(depth_multiplier=layer.depth_multiplier, filters=layer.filters, **fields)


def _lower_pool(name: str, layer, shape: LayerShape) -> ir.MaxPoolOp:
    strides = layer.strides or layer.pool_size
    padding = _padding_fields(name, shape, layer.pool_size, strides, layer.padding)
    if isinstance(layer, dsl_layers.AvgPool):
        # No pad module: SamePadAvgPool2d pads itself, so that it can leave the padded cells out of each mean.
        return ir.AvgPoolOp(name=name, pool_size=layer.pool_size, strides=strides, **padding | {"attrs": (name,)})
    return ir.MaxPoolOp(name=name, pool_size=layer.pool_size, strides=strides, **padding)


def _lower_layernorm(name: str, layer: dsl_layers.LayerNorm, shape: LayerShape) -> ir.LayerNormOp:
    # nn.LayerNorm normalises trailing axes (the channels only on a flat input) and has no beta without gamma.
    native = len(shape.input_shape) == 1 and layer.center == layer.scale
    return ir.LayerNormOp(
        name=name,
        attrs=(name,),
        features=shape.input_shape[-1],
        epsilon=layer.epsilon,
        center=layer.center,
        scale=layer.scale,
        torch_class="nn.LayerNorm" if native else "ChannelLayerNorm",
    )


def _lower_reshaping(name: str, layer, shape: LayerShape) -> ir.Op:
    """The layers that move values without weights: global pools, zero padding, upsampling."""
    if isinstance(layer, dsl_layers.GlobalAvgPool):
        return ir.GlobalAvgPoolOp(name=name, attrs=(name, f"{name}_flatten"))
    if isinstance(layer, dsl_layers.GlobalMaxPool):
        return ir.GlobalMaxPoolOp(name=name, attrs=(name,))
    if isinstance(layer, dsl_layers.ZeroPadding):
        (top, bottom), (left, right) = layer.padding
        return ir.ZeroPaddingOp(
            name=name, attrs=(name,), keras_padding=layer.padding, torch_pad=(left, right, top, bottom)
        )
    return ir.UpSamplingOp(name=name, attrs=(name,), size=layer.size, interpolation=layer.interpolation)


def _lower_dense(name: str, layer: dsl_layers.Dense, shape: LayerShape, activation_attr: str | None) -> ir.DenseOp:
    return ir.DenseOp(
        name=name,
        in_features=shape.input_shape[0],
        units=layer.units,
        use_bias=layer.use_bias,
        **_activation_fields(name, layer.activation, activation_attr),
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


RESHAPING = (dsl_layers.GlobalAvgPool, dsl_layers.GlobalMaxPool, dsl_layers.ZeroPadding, dsl_layers.UpSampling)


def _lower_residual(
    name: str, layer: dsl_layers.Residual, shape: LayerShape, activations: Activations, walk: list
) -> ir.ResidualOp:
    """Its block's ops, then its projection's, then its own activation: forward's order."""
    block = _lower_list(layer.layer_list(), list(shape.block), name, activations, walk)
    shortcut = ()
    if shape.shortcut:
        (conv_name, norm_name), (conv, norm) = projection_names(name), projection(shape.input_shape, shape.output_shape)
        conv_shape, norm_shape = shape.shortcut
        shortcut = (_lower_conv(conv_name, conv, conv_shape, None), _lower_batchnorm(norm_name, norm, norm_shape))
        walk += [(conv_name, "Conv2D", conv, conv_shape), (norm_name, "BatchNorm", norm, norm_shape)]
    own = activations.next() if layer.activation != "none" else None
    activation = _activation_fields(name, layer.activation, own)
    attrs = activation.pop("attrs")[1:]  # the activation's submodule: the sum itself is no submodule
    return ir.ResidualOp(
        name=name,
        attrs=attrs,
        block=block,
        shortcut=shortcut,
        variable=shortcut_variable(name.count("_")),  # one per nesting depth: res1, res1_res1, ...
        **activation,
    )


def _lower_layer(name: str, layer, shape: LayerShape, activation_attr: str | None) -> ir.Op:
    """`activation_attr`: the submodule of the layer's own activation, for a Dense or convolution that has one."""
    if isinstance(layer, KERNELS[1:]):
        return _lower_conv(name, layer, shape, activation_attr)
    if isinstance(layer, (dsl_layers.MaxPool, dsl_layers.AvgPool)):
        return _lower_pool(name, layer, shape)
    if isinstance(layer, RESHAPING):
        return _lower_reshaping(name, layer, shape)
    if isinstance(layer, dsl_layers.LayerNorm):
        return _lower_layernorm(name, layer, shape)
    if isinstance(layer, dsl_layers.Dense):
        return _lower_dense(name, layer, shape, activation_attr)
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
