"""Numerical parity of a generated package's PyTorch and Keras models: forward, gradients, a trajectory.

Call `runtime.common.frameworks.guard_triton()` and import torch before Keras in the calling process.
PyTorch's freshly drawn weights are copied into Keras, so both sides start from the same point. The float32 figures
compute their dots and convolutions in IEEE float32 in both frameworks, or in TF32 where Keras's device has it when
asked for `tf32` (`computing_in`); PyTorch's side runs on the CPU, which has no TF32.
"""

from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import numpy as np

from dsl.targets import PARITY_PRECISIONS
from runtime.common.layouts import FeatureMap, flat_to_keras_order, to_channels_first, to_channels_last
from runtime.interop import weights
from runtime.keras import backends

FORWARD_TOL, GRADIENT_TOL = 1e-5, 1e-4
# The trajectory's losses and final weights, in float64 (on every backend: runtime.keras.backends.honour_float64).
LOSS_TOL, WEIGHT_TOL = 1e-10, 1e-10
TARGETS = {"forward": FORWARD_TOL, "train_forward": GRADIENT_TOL, "gradient": GRADIENT_TOL}
TARGETS |= {"loss": LOSS_TOL, "weights": WEIGHT_TOL}
# In tf32 the float32 figures' dots and convolutions round their inputs to TF32's 11 significant bits (unit roundoff
# u = 2^-11); the float64 figures keep their targets, as TF32 is for float32 only. The bounds in u: docs/parity.md.
TF32_UNIT_ROUNDOFF = 2.0**-11
TF32_FORWARD_U, TF32_TRAIN_FORWARD_U = 8, 16
TF32_TARGETS = {
    "forward": TF32_FORWARD_U * TF32_UNIT_ROUNDOFF,
    "train_forward": TF32_TRAIN_FORWARD_U * TF32_UNIT_ROUNDOFF,
}
TARGETS_IN = dict(zip(PARITY_PRECISIONS, (TARGETS, TARGETS | TF32_TARGETS), strict=True))
SCALE_FLOOR = 1e-3
# Keras layers that carry a per-channel constant through as a per-channel constant (Dropout: the checks turn it off).
# A Dense without activation does too, and so does a Conv2D without activation and with valid padding.
CONSTANT_KEEPING = ("MaxPooling2D", "Flatten", "Dropout")


@dataclass
class ParityData:
    """Images (N, H, W, C) float in [0, 1] with int labels; `real` says whether they are Fashion-MNIST."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    real: bool


@dataclass
class ParityReport:
    """Every figure the checks measured; `ok` when all are within their targets."""

    ok: bool = False
    keras_backend: str = ""
    precision: str = "float32"  # PARITY_PRECISIONS: how the float32 figures' dots were asked to compute
    precision_ran: str = "float32"  # how they did: float32 where Keras's device has no TF32
    targets: dict[str, float] = field(default_factory=lambda: dict(TARGETS))
    real_data: bool = False
    forward_max_abs_diff: float = 0.0
    forward_random_max_abs_diff: float = 0.0
    forward_real_max_abs_diff: float | None = None
    forward_to_torch_max_abs_diff: float = 0.0  # Keras's own initial weights copied into PyTorch
    layer_max_abs_diff: dict[str, float] = field(default_factory=dict)
    train_forward_max_abs_diff: float = 0.0
    train_forward_max_rel_diff: float = 0.0
    gradient_max_rel_diff: float = 0.0
    gradient_rel_diff: dict[str, float] = field(default_factory=dict)
    trajectory_steps: int = 0
    exact_zero_gradients: dict[str, str] = field(default_factory=dict)  # offset -> the BatchNorm cancelling it
    loss_max_rel_diff: float = 0.0
    loss_worst_step: int = 0
    final_weights_max_rel_diff: float = 0.0
    final_weights_rel_diff: dict[str, float] = field(default_factory=dict)
    weights_first_over: dict[str, int] = field(default_factory=dict)  # the first step each weight missed its target
    final_losses: tuple[float, float] = (0.0, 0.0)

    def judge(self) -> "ParityReport":
        """Set `ok` from the targets."""
        figures = {
            "forward": max(self.forward_max_abs_diff, self.forward_to_torch_max_abs_diff),
            "train_forward": self.train_forward_max_rel_diff,
            "gradient": self.gradient_max_rel_diff,
            "loss": self.loss_max_rel_diff,
            "weights": self.final_weights_max_rel_diff,
        }
        self.ok = all(figures[name] <= target for name, target in self.targets.items())
        return self

    def to_dict(self) -> dict:
        """Plain JSON-ready values."""
        return asdict(self)


def random_data(input_shape: tuple[int, int, int], count: int = 512, seed: int = 0) -> ParityData:
    """Uniform [0, 1) images and uniform labels, for when the real data set is not at hand."""
    rng = np.random.default_rng(seed)
    images = rng.random((2 * count, *input_shape), dtype=np.float32)
    return ParityData(images[:count], rng.integers(0, 10, count), images[count:], real=False)


def rel_diffs(pairs: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """max |a - b| / max(max |b|, SCALE_FLOOR * the largest |b| of any tensor), per tensor.

    The floor gives a scale to tensors that are zero in exact arithmetic (the gradient of a bias that a
    BatchNorm follows), whose computed values are rounding noise in both frameworks.
    """
    floor = SCALE_FLOOR * max((float(np.max(np.abs(b))) for _, b in pairs.values() if b.size), default=0.0)
    result = {}
    for label, (a, b) in pairs.items():
        scale = max(float(np.max(np.abs(b))) if b.size else 0.0, floor)
        diff = float(np.max(np.abs(a - b))) if a.size else 0.0
        result[label] = diff / scale if scale else diff
    return result


def set_dropout_off(torch_model, keras_model) -> None:
    """Rate 0 on every Dropout of both models, so train-mode passes are deterministic."""
    import keras
    from torch import nn

    for module in torch_model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    for layer in keras_model.layers:
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0


@contextmanager
def keras_precision(dtype: str):
    """Build Keras objects in `dtype`, then restore the old settings.

    Setting floatx alone is not enough: Keras caches its global dtype policy when the first layer is built.
    """
    import keras

    old_floatx, old_policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx(dtype)
    keras.config.set_dtype_policy(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(old_floatx)
        keras.config.set_dtype_policy(old_policy)


@contextmanager
def float64_honoured():
    """Keras computing float64 models in float64 on its backend (runtime.keras.backends.honour_float64)."""
    if not backends.float64_enabled():
        raise RuntimeError(
            f"Keras's {backends.current()} backend rounds float64 to float32 here: "
            "set JAX_ENABLE_X64=1 before jax is imported (fmnist-dsl parity does)"
        )
    with backends.honour_float64():
        yield


@contextmanager
def computing_in(precision: str):
    """Both frameworks computing float32 dots and convolutions as `precision` (PARITY_PRECISIONS or a recipe's)
    says on their devices here, PyTorch's the CPU; their settings put back on leaving. Yields the precision that
    runs on Keras's device and, when that is not the one asked for, the line saying so."""
    from runtime.keras import precision as keras_precision
    from runtime.torch import precision as torch_precision

    torch_ran, _ = torch_precision.ran(precision, "cpu")
    keras_ran, notice = keras_precision.ran(precision)
    # Keras's own on its torch backend: the two settings are then PyTorch's one, and Keras's device is the GPU.
    with torch_precision.float32_dots(torch_ran), keras_precision.float32_dots(keras_ran):
        yield keras_ran, notice


def seeded_torch_model(package, dtype: str = "float32", seed: int = 0):
    """The package's PyTorch model in `dtype`, from the seed's initial weights (so every figure reproduces)."""
    from runtime.torch.init import load_initial_weights

    torch_model = package.build_torch_model()
    load_initial_weights(torch_model, package.WEIGHTS, seed)
    return torch_model.double() if dtype == "float64" else torch_model.float()


def build_pair(package, dtype: str = "float32", seed: int = 0):
    """Both models of `package` in `dtype` from the seed's initial weights, PyTorch first, its weights then copied
    into Keras (the weight transfer is part of what is checked)."""
    torch_model = seeded_torch_model(package, dtype, seed)
    with keras_precision(dtype):
        keras_model = package.build_keras_model()
    weights.torch_to_keras(torch_model, keras_model)
    return torch_model, keras_model


def torch_forward(torch_model, images: np.ndarray, attrs: list[str] = ()) -> tuple[np.ndarray, dict]:
    """Eval-mode output (NHWC/flat) and the outputs of the named submodules."""
    import torch

    seen: dict = {}
    hooks = [
        getattr(torch_model, attr).register_forward_hook(lambda _m, _i, out, a=attr: seen.__setitem__(a, out))
        for attr in attrs
    ]
    torch_model.eval()
    dtype = next(torch_model.parameters()).dtype
    with torch.no_grad():
        out = torch_model(torch.from_numpy(to_channels_first(images)).to(dtype))
    for hook in hooks:
        hook.remove()
    return out.numpy(), {attr: to_channels_last(value.numpy()) for attr, value in seen.items()}


def keras_layer_outputs(keras_model, images: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    """Inference-mode outputs of the named Keras layers."""
    import keras

    if not names:
        return {}
    probe = keras.Model(inputs=keras_model.inputs, outputs=[keras_model.get_layer(n).output for n in names])
    outputs = probe([images.astype(keras_model.dtype)], training=False)
    return {name: keras.ops.convert_to_numpy(out) for name, out in zip(names, outputs, strict=True)}


def layer_pairs(package) -> list[tuple[str, str]]:
    """(Keras layer, PyTorch submodule) giving each DSL layer's output. A Residual's row has none (its sum is a line
    of forward, and its activation an act<n> row of its own), so the layer after it compares what it carries."""
    return [(row.name, row.output_attr) for row in package.LAYERS if row.output_attr]


def forward_diffs(torch_model, keras_model, images: np.ndarray, layer_pairs) -> tuple[float, dict[str, float]]:
    """Eval-mode max |difference| of the outputs, and per layer for the given (keras_name, torch_attr) pairs."""
    import keras

    torch_out, torch_layers = torch_forward(torch_model, images, [attr for _, attr in layer_pairs])
    keras_out = keras.ops.convert_to_numpy(keras_model(images.astype(keras_model.dtype), training=False))
    keras_layers = keras_layer_outputs(keras_model, images, [name for name, _ in layer_pairs])
    flat = flat_order_outputs(keras_model)
    per_layer = {
        name: float(np.max(np.abs(flat_to_keras_order(torch_layers[attr], flat.get(name)) - keras_layers[name])))
        for name, attr in layer_pairs
    }
    return float(np.max(np.abs(torch_out - keras_out))), per_layer


def flat_order_outputs(keras_model) -> dict[str, FeatureMap]:
    """Layer name -> the feature map whose flattened features its output holds, in a different order in PyTorch.

    A Flatten of a feature map and the layers after it up to the next Dense (BatchNorm, Dropout, Activation).
    """
    maps, current = {}, None
    for layer in keras_model.layers:
        kind = layer.__class__.__name__
        if kind == "Flatten":
            shape = tuple(layer.input.shape[1:])
            current = shape if len(shape) == 3 else None
        elif kind == "Dense":
            current = None
        if current is not None:
            maps[layer.name] = current
    return maps


def keras_to_torch_forward_diff(package, images: np.ndarray) -> float:
    """Eval-mode max |difference| after copying a fresh Keras model's own initial weights into a fresh PyTorch one."""
    torch_model, keras_model = package.build_torch_model().float(), package.build_keras_model()
    weights.keras_to_torch(keras_model, torch_model)
    return forward_diffs(torch_model, keras_model, images, [])[0]


def torch_step_grads(torch_model, output: str, images: np.ndarray, labels: np.ndarray):
    """Train-mode output and loss of one batch, gradients left in `.grad`."""
    import torch

    torch_model.train()
    torch_model.zero_grad()
    dtype = next(torch_model.parameters()).dtype
    out = torch_model(torch.from_numpy(to_channels_first(images)).to(dtype))
    from runtime.torch.losses import loss_function

    loss = loss_function(output)(out, torch.from_numpy(np.asarray(labels, dtype=np.int64)))
    loss.backward()
    return out.detach().numpy(), float(loss.detach())


def keras_step_grads(keras_model, output: str, images: np.ndarray, labels: np.ndarray):
    """Train-mode output, loss and gradients (one per trainable variable) of one batch, on any Keras backend."""
    import keras

    from runtime.keras.backends import value_and_grad
    from runtime.keras.losses import loss_function

    out, loss, grads = value_and_grad(keras_model, loss_function(output), images.astype(keras_model.dtype), labels)
    return keras.ops.convert_to_numpy(out), float(keras.ops.convert_to_numpy(loss)), grads


def train_forward_diff(torch_model, keras_model, output: str, data: ParityData, batch: int = 64) -> tuple[float, float]:
    """Max absolute and relative difference of the train-mode outputs (batch statistics, dropout off) on one batch."""
    images, labels = data.train_images[:batch], data.train_labels[:batch]
    set_dropout_off(torch_model, keras_model)
    torch_out, _ = torch_step_grads(torch_model, output, images, labels)
    keras_out, _, _ = keras_step_grads(keras_model, output, images, labels)
    return float(np.max(np.abs(torch_out - keras_out))), rel_diffs({"output": (torch_out, keras_out)})["output"]


def gradient_check(package, data: ParityData, batch: int = 64) -> dict[str, float]:
    """Each parameter's gradient relative difference on one batch, in float64.

    Float64 because the gradient is discontinuous (ReLU kinks, max-pool near-ties): float32 rounding alone
    can send a few gradients another way, which says nothing about the two models' formulas.
    """
    import keras

    torch_model, keras_model = build_pair(package, "float64")
    images, labels = data.train_images[:batch].astype(np.float64), data.train_labels[:batch]
    set_dropout_off(torch_model, keras_model)
    torch_step_grads(torch_model, package.OUTPUT, images, labels)
    with float64_honoured():
        _, _, grads = keras_step_grads(keras_model, package.OUTPUT, images, labels)
    by_variable = {id(v): g for v, g in zip(keras_model.trainable_variables, grads, strict=True)}
    return rel_diffs(
        {
            p.label: (
                weights.torch_array(p, p.torch_tensor.grad),
                keras.ops.convert_to_numpy(by_variable[id(p.keras_variable)]),
            )
            for p in weights.tensor_pairs(torch_model, keras_model)
            if id(p.keras_variable) in by_variable
        }
    )


@dataclass
class Trajectory:
    """A float64 training run of both models on the same batches: each step's losses and weights compared."""

    losses: list[tuple[float, float]] = field(default_factory=list)  # (PyTorch, Keras), step 1 first
    weight_diffs: dict[str, list[float]] = field(default_factory=dict)  # label -> relative difference after each step
    exact_zero: dict[str, str] = field(default_factory=dict)  # cancelled_offsets: trained with their exact gradient 0

    def worst_loss(self) -> tuple[float, int]:
        """The largest `abs(t - k) / abs(t)` of a step's losses, and that step (0 when there is none)."""
        diffs = [abs(t - k) / max(abs(t), 1e-12) for t, k in self.losses]
        if not diffs:
            return 0.0, 0
        step = int(np.argmax(diffs))
        return diffs[step], step + 1

    def final_weights(self) -> dict[str, float]:
        """Each weight's relative difference after the last step."""
        return {label: diffs[-1] for label, diffs in self.weight_diffs.items() if diffs}

    def first_over(self, tolerance: float) -> dict[str, int]:
        """The first step after which each weight's relative difference exceeded `tolerance`, for those that did."""
        return {
            label: next(step for step, diff in enumerate(diffs, 1) if diff > tolerance)
            for label, diffs in self.weight_diffs.items()
            if max(diffs, default=0.0) > tolerance
        }


def cancelled_offsets(keras_model) -> dict[str, str]:
    """Weight label -> the BatchNorm that cancels it: its true gradient in a training step is zero.

    A per-channel offset (the bias of a Dense or Conv2D without activation, a BatchNorm's beta) that reaches a
    BatchNorm as a per-channel constant, directly or through CONSTANT_KEEPING layers, a Dense without activation or a
    valid Conv2D without activation, by a path no other layer reads from (a Residual's input is read by its block
    and its shortcut): the BatchNorm subtracts the batch mean, offset included, so the training-mode
    output does not depend on it. Its computed gradient is rounding noise in each framework.
    """
    import keras

    parents = {
        layer.name: [node.operation.name for node in layer._inbound_nodes[0].parent_nodes]
        for layer in keras_model.layers
    }
    readers = Counter(parent for names in parents.values() for parent in names)
    cancelled, reaching = {}, {}  # reaching: layer -> the offsets its output carries as per-channel constants
    for layer in keras_model.layers:  # in the graph's order: a layer's inputs come before it
        kind = layer.__class__.__name__
        # Through one input read by this layer alone: an offset that also reaches a residual's sum is not cancelled.
        inputs = parents[layer.name]
        pending = reaching.get(inputs[0], []) if len(inputs) == 1 and readers[inputs[0]] == 1 else []
        if kind == "BatchNormalization":
            cancelled |= dict.fromkeys(pending, layer.name)
            pending = [f"{layer.name}.beta"] if layer.center else []
        elif kind in ("Dense", "Conv2D") and layer.activation is keras.activations.linear:
            keeps = kind == "Dense" or layer.padding == "valid"  # same padding: border outputs see fewer inputs
            pending = (pending if keeps else []) + ([f"{layer.name}.bias"] if layer.use_bias else [])
        elif kind not in CONSTANT_KEEPING:
            pending = []
        reaching[layer.name] = pending
    return cancelled


def paired_weight_diffs(pairs) -> dict[str, float]:
    """The relative difference of every paired weight's current values."""
    import keras

    return rel_diffs({p.label: (weights.torch_array(p), keras.ops.convert_to_numpy(p.keras_variable)) for p in pairs})


def float64_optimizers(torch_model, keras_model, optimizer: dict):
    """The optimizer `optimizer` describes, for each of two float64 models."""
    from runtime.keras import optim as keras_optim
    from runtime.torch import optim as torch_optim

    torch_opt = torch_optim.from_config(torch_model.parameters(), optimizer)
    with keras_precision("float64"):  # the learning rate variable takes floatx
        keras_opt = keras_optim.from_config(optimizer)
        keras_opt.build(keras_model.trainable_variables)
    return torch_opt, keras_opt


def paired_step(output: str, models, optimizers, zeroed, images, labels) -> tuple[float, float]:
    """One optimizer step of each model on one batch, the gradients of the `zeroed` pairs set to 0; both losses."""
    import keras

    (torch_model, keras_model), (torch_opt, keras_opt) = models, optimizers
    _, torch_value = torch_step_grads(torch_model, output, images, labels)
    for pair in zeroed:
        pair.torch_tensor.grad.zero_()
    torch_opt.step()
    _, keras_value, grads = keras_step_grads(keras_model, output, images, labels)
    zeroed_ids = {id(pair.keras_variable) for pair in zeroed}
    variables = keras_model.trainable_variables
    grads = [keras.ops.zeros_like(g) if id(v) in zeroed_ids else g for g, v in zip(grads, variables, strict=True)]
    keras_opt.apply_gradients(zip(grads, variables, strict=True))
    return torch_value, keras_value


def trajectory(package, optimizer: dict, data: ParityData, steps: int, batch: int = 32, seed: int = 0) -> Trajectory:
    """`steps` optimizer steps of both float64 models on the same batches, dropout off, compared after every step.

    The offsets a BatchNorm cancels take their exact gradient, zero, in both models: their computed gradients are
    rounding noise, which Adam turns into steps of up to the learning rate, different in each framework.
    """
    models = build_pair(package, "float64")
    set_dropout_off(*models)
    optimizers = float64_optimizers(*models, optimizer)
    pairs = weights.tensor_pairs(*models)
    run = Trajectory(exact_zero=cancelled_offsets(models[1]))
    zeroed = [pair for pair in pairs if pair.label in run.exact_zero]
    rng = np.random.default_rng(seed)
    with float64_honoured():
        for _ in range(steps):
            index = rng.choice(len(data.train_labels), batch, replace=False)
            images, labels = data.train_images[index].astype(np.float64), data.train_labels[index]
            run.losses.append(paired_step(package.OUTPUT, models, optimizers, zeroed, images, labels))
            for label, diff in paired_weight_diffs(pairs).items():
                run.weight_diffs.setdefault(label, []).append(diff)
    return run


def check(
    package, optimizer: dict, data: ParityData | None = None, layer_pairs=(), steps: int = 100, precision="float32"
):
    """All parity checks of one generated package; `layer_pairs` are (keras_name, torch_attr) per DSL layer.

    `precision` (PARITY_PRECISIONS): the float32 figures' dots in IEEE float32, or in TF32 where Keras's device has
    it, judged by that precision's targets (TARGETS_IN); the report says which ran.
    """
    with computing_in(precision) as (ran, _):
        report = ParityReport(keras_backend=backends.current(), precision=precision, precision_ran=ran)
        report.targets = dict(TARGETS_IN[precision])
        return _measure(report, package, optimizer, data, layer_pairs, steps).judge()


def _measure(report: ParityReport, package, optimizer: dict, data: ParityData | None, layer_pairs, steps: int):
    """check's figures into `report`."""
    data = data or random_data(tuple(package.INPUT_SHAPE))
    report.real_data, report.trajectory_steps = data.real, steps
    torch_model, keras_model = build_pair(package)
    noise = random_data(tuple(package.INPUT_SHAPE), count=64, seed=1).test_images
    report.forward_random_max_abs_diff, report.layer_max_abs_diff = forward_diffs(
        torch_model, keras_model, noise, list(layer_pairs)
    )
    report.forward_max_abs_diff = report.forward_random_max_abs_diff
    if data.real:
        report.forward_real_max_abs_diff, _ = forward_diffs(torch_model, keras_model, data.test_images, [])
        report.forward_max_abs_diff = max(report.forward_max_abs_diff, report.forward_real_max_abs_diff)
    report.forward_to_torch_max_abs_diff = keras_to_torch_forward_diff(package, noise)
    report.train_forward_max_abs_diff, report.train_forward_max_rel_diff = train_forward_diff(
        torch_model, keras_model, package.OUTPUT, data
    )
    report.gradient_rel_diff = gradient_check(package, data)
    report.gradient_max_rel_diff = max(report.gradient_rel_diff.values(), default=0.0)
    if steps:
        run = trajectory(package, optimizer, data, steps)
        report.exact_zero_gradients = run.exact_zero
        report.loss_max_rel_diff, report.loss_worst_step = run.worst_loss()
        report.final_weights_rel_diff = run.final_weights()
        report.final_weights_max_rel_diff = max(report.final_weights_rel_diff.values(), default=0.0)
        report.weights_first_over = run.first_over(report.targets["weights"])
        report.final_losses = run.losses[-1]
    return report
