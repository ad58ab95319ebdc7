"""The `training` section: optimizer, schedule, split and stopping rules, with one meaning each."""

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, NonNegativeFloat, PositiveFloat, PositiveInt

from dsl.base import SPEC_CONFIG, as_tuple
from dsl.targets import PRECISIONS

# Keras's set_random_seed seeds numpy's legacy generator, which takes 32 bits.
MAX_SEED = 2**32 - 1


class _Section(BaseModel):
    model_config = SPEC_CONFIG


class SGD(_Section):
    """SGD with heavy-ball or Nesterov momentum; weight decay is L2 added to the gradient."""

    name: Literal["sgd"]
    learning_rate: PositiveFloat = 0.01
    momentum: float = Field(default=0.0, ge=0, lt=1)
    nesterov: bool = False
    weight_decay: NonNegativeFloat = 0.0


class Adam(_Section):
    """Adam as published: p -= lr * m_hat / (sqrt(v_hat) + epsilon)."""

    name: Literal["adam"]
    learning_rate: PositiveFloat = 0.001
    beta_1: float = Field(default=0.9, ge=0, lt=1)
    beta_2: float = Field(default=0.999, ge=0, lt=1)
    epsilon: PositiveFloat = 1e-8
    weight_decay: NonNegativeFloat = 0.0


class StepSchedule(_Section):
    """Multiply the learning rate by `gamma` every `step_size` epochs."""

    name: Literal["step"]
    step_size: PositiveInt
    gamma: float = Field(default=0.1, gt=0, le=1)


class CosineSchedule(_Section):
    """Cosine decay from the initial rate to `min_learning_rate` over the run's epochs."""

    name: Literal["cosine"]
    min_learning_rate: NonNegativeFloat = 0.0


class PlateauSchedule(_Section):
    """Multiply the rate by `factor` when validation loss stalls for `patience` epochs."""

    name: Literal["reduce_on_plateau"]
    factor: float = Field(default=0.1, gt=0, lt=1)
    patience: PositiveInt = 2
    min_learning_rate: NonNegativeFloat = 0.0


class EarlyStopping(_Section):
    """Stop when validation loss has not improved for `patience` epochs."""

    patience: PositiveInt = 3
    restore_best_weights: bool = True


class SplitCounts(_Section):
    """Explicit train / validation / test counts carved from the 60,000 training images."""

    train: PositiveInt
    val: PositiveInt
    test: PositiveInt


def _ordered(bounds: tuple[float, float]) -> tuple[float, float]:
    if bounds[0] > bounds[1]:
        raise ValueError(f"[{bounds[0]}, {bounds[1]}] is not [low, high]: the low bound may not exceed the high")
    return bounds


Fraction = Annotated[float, Field(gt=0, le=1)]
# A [low, high] range of an area fraction, and of a height / width ratio.
Fractions = Annotated[as_tuple(tuple[Fraction, Fraction]), AfterValidator(_ordered)]
Ratios = Annotated[as_tuple(tuple[PositiveFloat, PositiveFloat]), AfterValidator(_ordered)]


class RandomErasing(_Section):
    """Random erasing (Zhong et al. 2017) as torchvision's RandomErasing: with `probability`, one rectangle of each
    image, of `scale` times the image's area and height / width `ratio`, set to `value` (docs/semantics.md)."""

    probability: float = Field(default=0.5, gt=0, le=1)
    scale: Fractions = (0.02, 0.33)
    ratio: Ratios = (0.3, 3.3)
    value: float = Field(default=0.0, ge=0, le=1)  # pixels are in [0, 1]


class Augmentation(_Section):
    """Random horizontal flip, random integer translation of up to `translate` pixels, then random erasing."""

    horizontal_flip: bool = False
    translate: int = Field(default=0, ge=0, le=8)
    # Left out of the normalised spec when off, so that a spec without it keeps the JSON (and hash) it had before.
    random_erasing: RandomErasing | None = Field(default=None, exclude_if=lambda erasing: erasing is None)


Optimizer = Annotated[SGD | Adam, Field(discriminator="name")]
Schedule = Annotated[StepSchedule | CosineSchedule | PlateauSchedule, Field(discriminator="name")]


class Training(_Section):
    """How both frameworks train the model; the loss follows the output activation."""

    optimizer: Optimizer
    batch_size: PositiveInt = 32
    epochs: PositiveInt = 10
    validation_split: float = Field(default=0.0, ge=0, lt=1)
    split: SplitCounts | None = None
    schedule: Schedule | None = None
    early_stopping: EarlyStopping | None = None
    augmentation: Augmentation = Augmentation()
    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    # Weights, optimizer state and BatchNorm statistics stay float32 in every precision. float32 computes dots and
    # convolutions in IEEE float32, tf32 in TF32 where the device has it (float32 elsewhere); a 16-bit one computes
    # the layers in that type, the output layer and the loss in float32; fp16 scales the loss dynamically, bf16 not.
    precision: Literal[PRECISIONS] = "float32"
