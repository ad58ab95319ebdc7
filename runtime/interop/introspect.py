"""Per-layer output shapes and parameter counts read from live PyTorch and Keras models."""

import numpy as np


def torch_output_shapes(model, input_shape_nchw: tuple[int, ...], attrs: list[str]) -> dict[str, tuple[int, ...]]:
    """The output shape (without the batch axis) of each named submodule, from one eval-mode forward."""
    import torch

    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [
        getattr(model, attr).register_forward_hook(
            lambda _m, _i, out, attr=attr: shapes.__setitem__(attr, tuple(out.shape[1:]))
        )
        for attr in attrs
    ]
    model.eval()
    with torch.no_grad():
        dtype = next(model.parameters(), torch.zeros(())).dtype  # a model may hold no parameters at all
        model(torch.zeros((2, *input_shape_nchw), dtype=dtype))
    for hook in hooks:
        hook.remove()
    return shapes


def torch_parameter_counts(module) -> tuple[int, int]:
    """(trainable parameters, state buffers) of a module; `num_batches_tracked` is bookkeeping, not state."""
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    buffers = sum(b.numel() for name, b in module.named_buffers() if not name.endswith("num_batches_tracked"))
    return trainable, buffers


def keras_output_shapes(model) -> dict[str, tuple[int, ...]]:
    """The output shape (without the batch axis) of each layer, from one inference-mode call."""
    import keras

    probe = keras.Model(inputs=model.inputs, outputs=[layer.output for layer in model.layers])
    outputs = probe([np.zeros((2, *model.input_shape[1:]), dtype=keras.config.floatx())], training=False)
    if len(model.layers) == 1:
        outputs = [outputs]  # a one-output model returns the tensor itself
    return {layer.name: tuple(output.shape[1:]) for layer, output in zip(model.layers, outputs, strict=True)}


def keras_parameter_counts(layer_or_model) -> tuple[int, int]:
    """(trainable, non-trainable) weight counts of a Keras layer or model."""
    trainable = sum(int(np.prod(w.shape)) for w in layer_or_model.trainable_weights)
    frozen = sum(int(np.prod(w.shape)) for w in layer_or_model.non_trainable_weights)
    return trainable, frozen
