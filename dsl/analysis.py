"""Whole-spec checks: what no single field can know, but that would make training fail (or never start).

Each check returns the first problem as (field, message), or None; the loader turns it into a located SpecError.
"""

from dsl.dataset import IMAGE_SHAPE, TRAINING_IMAGES
from dsl.shapes import LayerShape
from dsl.spec import Spec
from dsl.training import Training

Problem = tuple[str, str] | None


def input_problem(spec: Spec) -> Problem:
    """An input shape the training data does not have (checked before the layers, which follow from it)."""
    if spec.training is not None and tuple(spec.input) != IMAGE_SHAPE:
        return "input", (
            f"a spec with a training section trains on Fashion-MNIST's 28x28 grey images, so its input is "
            f"{list(IMAGE_SHAPE)}. Received: {list(spec.input)}"
        )
    return None


def first_problem(spec: Spec, shapes: list[LayerShape]) -> Problem:
    """The first reason a spec whose layers fit together cannot be built or trained, or None."""
    problem = _size_problem(spec, shapes)
    if problem is None and spec.training is not None:
        problem = _split_problem(spec.training) or _monitor_problem(spec.training)
    return problem


def _size_problem(spec: Spec, shapes: list[LayerShape]) -> Problem:
    total = sum(shape.trainable + shape.non_trainable for shape in shapes)
    if total > spec.limits.parameters:
        index = max(range(len(shapes)), key=lambda i: shapes[i].trainable + shapes[i].non_trainable)
        largest = shapes[index].trainable + shapes[index].non_trainable
        return f"layers[{index}].{shapes[index].kind}", (
            f"the model has {total:,} parameters ({largest:,} in this layer), more than the bound of "
            f"{spec.limits.parameters:,}; to build it anyway, raise the bound with `limits: {{parameters: N}}`"
        )
    values = sum(shape.values for shape in shapes)
    if values > spec.limits.activations:
        index = max(range(len(shapes)), key=lambda i: shapes[i].values)
        return f"layers[{index}].{shapes[index].kind}", (
            f"the layers output {values:,} values per image (this one {shapes[index].values:,}), more "
            f"than the bound of {spec.limits.activations:,}; to build it anyway, raise the bound with "
            "`limits: {activations: N}`"
        )
    return None


def image_counts(training: Training) -> tuple[int, int]:
    """(training images, validation images) the recipe draws from the 60,000, as runtime.common.data does."""
    if training.split is not None:
        return training.split.train, training.split.val
    val = round(TRAINING_IMAGES * training.validation_split)
    return TRAINING_IMAGES - val, val


def _split_problem(training: Training) -> Problem:
    split = training.split
    if split is not None and split.train + split.val + split.test > TRAINING_IMAGES:
        total = split.train + split.val + split.test
        return "training.split", f"train + val + test = {total:,} is more than the {TRAINING_IMAGES:,} training images"
    if split is not None and training.validation_split > 0:
        return "training.validation_split", "give validation_split or split, not both: split's val is the validation"
    train, _ = image_counts(training)
    if training.batch_size > train:
        return "training.batch_size", (
            f"{training.batch_size:,} is larger than the {train:,} training images, so no batch would be full"
        )
    return None


def _monitor_problem(training: Training) -> Problem:
    if image_counts(training)[1] > 0:
        return None
    no_data = "but the spec holds out no validation images: set training.validation_split (e.g. 0.1) or training.split"
    if training.early_stopping is not None:
        return "training.early_stopping", f"early stopping monitors the validation loss, {no_data}"
    if training.schedule is not None and training.schedule.name == "reduce_on_plateau":
        return "training.schedule", f"reduce_on_plateau monitors the validation loss, {no_data}"
    return None
