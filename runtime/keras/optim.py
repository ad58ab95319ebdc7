"""Keras optimizers that follow PyTorch's formulas exactly, which are the DSL's documented semantics.

Keras's own SGD folds the learning rate into the velocity and its Adam puts epsilon inside the bias
correction, so both drift from torch.optim; these do not. Weight decay is L2 added to the gradient
(g = grad + wd * p), as torch.optim does, not Keras's decoupled decay: the base class never sees it.
"""

import keras
from keras import ops

PACKAGE = "fmnist_dsl"


def _const(value: float, dtype):
    """A Python float as a tensor of `dtype`; ops.cast would round it through float32 first."""
    return ops.convert_to_tensor(value, dtype=dtype)


@keras.saving.register_keras_serializable(package=PACKAGE)
class SGD(keras.optimizers.Optimizer):
    """torch.optim.SGD: buf = momentum * buf + g; p -= lr * (g + momentum * buf if nesterov else buf)."""

    def __init__(self, *, learning_rate, momentum, nesterov, weight_decay, name="sgd", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, weight_decay=None, **kwargs)
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.l2 = float(weight_decay)

    def build(self, variables) -> None:
        """One momentum buffer per variable, zero: momentum * 0 + g is torch's first-step buf = g, exactly."""
        if self.built:
            return
        super().build(variables)
        self.momentums = [self.add_variable_from_reference(v, name="momentum") for v in variables]

    def update_step(self, gradient, variable, learning_rate) -> None:
        """One torch.optim.SGD step on one variable."""
        lr = ops.cast(learning_rate, variable.dtype)
        g = ops.cast(gradient, variable.dtype)
        if self.l2:
            g = ops.add(g, ops.multiply(_const(self.l2, variable.dtype), variable))
        if self.momentum:
            buf = self.momentums[self._get_variable_index(variable)]
            momentum = _const(self.momentum, variable.dtype)
            self.assign(buf, ops.add(ops.multiply(buf, momentum), g))
            g = ops.add(g, ops.multiply(buf, momentum)) if self.nesterov else buf
        self.assign_sub(variable, ops.multiply(g, lr))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"momentum": self.momentum, "nesterov": self.nesterov, "weight_decay": self.l2})
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class Adam(keras.optimizers.Optimizer):
    """torch.optim.Adam: p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps), g = grad + wd * p."""

    def __init__(self, *, learning_rate, beta_1, beta_2, epsilon, weight_decay, name="adam", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, weight_decay=None, **kwargs)
        self.beta_1, self.beta_2 = float(beta_1), float(beta_2)
        self.epsilon = float(epsilon)
        self.l2 = float(weight_decay)

    def build(self, variables) -> None:
        """First and second moment estimates, zero."""
        if self.built:
            return
        super().build(variables)
        self.ms = [self.add_variable_from_reference(v, name="m") for v in variables]
        self.vs = [self.add_variable_from_reference(v, name="v") for v in variables]

    def update_step(self, gradient, variable, learning_rate) -> None:
        """One torch.optim.Adam step on one variable, in torch's order of operations."""
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        g = ops.cast(gradient, dtype)
        if self.l2:
            g = ops.add(g, ops.multiply(_const(self.l2, dtype), variable))
        index = self._get_variable_index(variable)
        m, v = self.ms[index], self.vs[index]
        b1, b2 = _const(self.beta_1, dtype), _const(self.beta_2, dtype)
        step = ops.cast(self.iterations + 1, dtype)
        self.assign(m, ops.add(m, ops.multiply(ops.subtract(g, m), 1 - b1)))  # torch's lerp
        self.assign(v, ops.add(ops.multiply(v, b2), ops.multiply(ops.multiply(g, g), 1 - b2)))
        step_size = ops.divide(lr, 1 - ops.power(b1, step))
        denom = ops.add(ops.divide(ops.sqrt(v), ops.sqrt(1 - ops.power(b2, step))), _const(self.epsilon, dtype))
        self.assign_sub(variable, ops.multiply(step_size, ops.divide(m, denom)))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon, "weight_decay": self.l2})
        return config


OPTIMIZERS = {"sgd": SGD, "adam": Adam}


def from_config(config: dict) -> keras.optimizers.Optimizer:
    """SGD or Adam from the spec's optimizer section, complete as the DSL fills it in:
    {"name": "sgd", learning_rate, momentum, nesterov, weight_decay} or
    {"name": "adam", learning_rate, beta_1, beta_2, epsilon, weight_decay}.
    """
    name = config["name"]
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}: expected 'sgd' or 'adam'")
    return OPTIMIZERS[name](**{key: value for key, value in config.items() if key != "name"})
