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


def init_line(initializer: str, tensor: str, is_matrix: bool) -> str:
    """The statement that initialises `tensor`; Keras's truncated he_normal and 1-D fans need runtime."""
    if initializer in NATIVE_INIT and (is_matrix or initializer == "zeros"):
        return NATIVE_INIT[initializer].format(tensor)
    return f"torch_init.{initializer}_({tensor})"
