"""How PyTorch spells each DSL meaning: activations and initialisers matching Keras's."""

# dim=1 is the channel axis in NCHW, which is Keras's axis=-1 in NHWC.
ACTIVATION_MODULES = {
    "relu": "nn.ReLU()",
    "tanh": "nn.Tanh()",
    "sigmoid": "nn.Sigmoid()",
    "elu": "nn.ELU(alpha=1.0)",
    "gelu": 'nn.GELU(approximate="none")',
    "softmax": "nn.Softmax(dim=1)",
    "log_softmax": "nn.LogSoftmax(dim=1)",
}

# nn.init matches Keras exactly for these on weights; fans are computed the same way.
NATIVE_INIT = {
    "glorot_uniform": "nn.init.xavier_uniform_({})",
    "he_uniform": 'nn.init.kaiming_uniform_({}, nonlinearity="relu")',
    "zeros": "nn.init.zeros_({})",
}


def init_line(initializer: str, tensor: str, is_matrix: bool, multiplier: int | None = None) -> str:
    """The statement that initialises `tensor`; Keras's truncated he_normal and 1-D fans need runtime.

    `multiplier`: a depthwise kernel's depth multiplier. PyTorch holds it as (in * multiplier, 1, h, w), whose fans
    are not those of Keras's (h, w, in, multiplier), so runtime computes Keras's from the multiplier.
    """
    if initializer == "zeros" or initializer in NATIVE_INIT and is_matrix and multiplier is None:
        return NATIVE_INIT[initializer].format(tensor)
    if multiplier is not None:
        return f"torch_init.{initializer}_({tensor}, depth_multiplier={multiplier})"
    return f"torch_init.{initializer}_({tensor})"
