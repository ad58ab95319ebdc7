"""Unit tier: random erasing means what docs/semantics.md says, torchvision's RandomErasing, in both training loops.

The oracle is torchvision's get_params written out per image in plain Python over the draws the documentation
names; the property checks hold whatever the draws.
"""

import math

import numpy as np
import pytest

from runtime.common import data
from runtime.common.recipe import augment
from tests.recipes import make_recipe

TORCHVISION = {"probability": 0.5, "scale": (0.02, 0.33), "ratio": (0.3, 3.3), "value": 0.0}
ALWAYS_FITS = {"scale": (0.02, 0.1), "ratio": (0.5, 2.0), "value": 0.0}  # sides at most 13 of 28


def oracle(batch: np.ndarray, rng: np.random.Generator, probability, scale, ratio, value) -> np.ndarray:
    """The documented draws, then torchvision's RandomErasing.get_params and its erase, one image at a time."""
    n, height, width = batch.shape[:3]
    erase = rng.random(n) < probability
    fractions = rng.uniform(scale[0], scale[1], size=(n, data.ERASING_ATTEMPTS))
    log_ratios = rng.uniform(math.log(ratio[0]), math.log(ratio[1]), size=(n, data.ERASING_ATTEMPTS))
    boxes = []
    for i in range(n):
        box = (0, 0)
        for attempt in range(data.ERASING_ATTEMPTS):
            area = height * width * fractions[i, attempt]
            aspect = math.exp(log_ratios[i, attempt])
            h, w = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
            if h < height and w < width:
                box = (h, w) if erase[i] else (0, 0)
                break
        boxes.append(box)
    tops = rng.integers(0, [height - h + 1 for h, _ in boxes])
    lefts = rng.integers(0, [width - w + 1 for _, w in boxes])
    out = batch.copy()
    for i, (h, w) in enumerate(boxes):
        out[i, tops[i] : tops[i] + h, lefts[i] : lefts[i] + w] = value
    return out


def erased_boxes(before: np.ndarray, after: np.ndarray, value: float) -> list[tuple[int, int] | None]:
    """Each image's erased (height, width), or None; fails unless the change is one rectangle set to `value`."""
    boxes = []
    for old, new in zip(before, after, strict=True):
        changed = np.any(old != new, axis=-1)
        if not changed.any():
            boxes.append(None)
            continue
        rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
        box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        assert changed[box].all() and changed.sum() == len(rows) * len(cols), "one solid rectangle"
        assert np.all(new[box] == np.float32(value)), "set to the value in every channel"
        boxes.append((len(rows), len(cols)))
    return boxes


def within_bounds(box: tuple[int, int], shape: tuple[int, int], scale, ratio) -> bool:
    """Whether some area fraction in `scale` and height / width ratio in `ratio` round to the box's sides."""
    h, w = box
    # round(sqrt(A r)) = h and round(sqrt(A / r)) = w bound A = sqrt(A r) sqrt(A / r) and r = sqrt(A r) / sqrt(A / r).
    area = ((h - 0.5) * (w - 0.5), (h + 0.5) * (w + 0.5))
    aspect = ((h - 0.5) / (w + 0.5), (h + 0.5) / (w - 0.5))
    fraction = (area[0] / (shape[0] * shape[1]), area[1] / (shape[0] * shape[1]))
    fits = h < shape[0] and w < shape[1]
    return (
        fits and fraction[0] <= scale[1] and fraction[1] >= scale[0] and aspect[0] <= ratio[1] and aspect[1] >= ratio[0]
    )


@pytest.mark.parametrize(
    ("shape", "arguments"),
    [
        ((64, 28, 28, 1), TORCHVISION),  # the largest areas and ratios do not fit: redrawn
        ((64, 28, 28, 3), TORCHVISION | {"value": 0.25}),
        ((64, 28, 28), ALWAYS_FITS | {"probability": 1.0}),
        ((64, 5, 7, 1), {"probability": 0.9, "scale": (0.5, 0.9), "ratio": (0.2, 5.0), "value": 1.0}),  # rarely fits
    ],
)
def test_random_erase_is_torchvisions_per_image(shape, arguments):
    batch = np.random.default_rng(0).random(shape, dtype=np.float32) + 2.0  # no pixel is the value already
    out = data.random_erase(batch, np.random.default_rng(7), **arguments)
    assert out.shape == batch.shape and out.dtype == batch.dtype
    np.testing.assert_array_equal(out, oracle(batch, np.random.default_rng(7), **arguments))
    assert np.all(batch >= 2.0), "the input batch is left as it was"


def test_each_erased_rectangle_has_an_area_and_ratio_in_bounds_and_nothing_else_changes():
    batch = np.ones((2000, 28, 28, 1), dtype=np.float32)
    arguments = TORCHVISION | {"ratio": (0.5, 3.0)}
    out = data.random_erase(batch, np.random.default_rng(3), **arguments)
    boxes = [box for box in erased_boxes(batch, out, 0.0) if box is not None]
    assert 800 < len(boxes) < 1200
    assert all(within_bounds(box, (28, 28), arguments["scale"], arguments["ratio"]) for box in boxes)
    assert max(h for h, _ in boxes) >= 20 and max(w for _, w in boxes) >= 12, "the ratio's range is used"


def test_a_box_with_height_and_width_swapped_is_caught():
    batch = np.ones((500, 28, 28, 1), dtype=np.float32)
    arguments = ALWAYS_FITS | {"probability": 1.0, "ratio": (2.0, 3.0)}
    # The planted bug: the ratio read as width / height, as erasing the transposed images does.
    swapped = data.random_erase(batch.transpose(0, 2, 1, 3), np.random.default_rng(1), **arguments)
    boxes = erased_boxes(batch, swapped.transpose(0, 2, 1, 3), 0.0)
    assert not any(within_bounds(box, (28, 28), arguments["scale"], arguments["ratio"]) for box in boxes)
    right = erased_boxes(batch, data.random_erase(batch, np.random.default_rng(1), **arguments), 0.0)
    assert all(within_bounds(box, (28, 28), arguments["scale"], arguments["ratio"]) for box in right)


@pytest.mark.parametrize("probability", [0.1, 0.5, 1.0])
def test_each_image_is_erased_with_the_probability(probability):
    batch = np.ones((4000, 28, 28, 1), dtype=np.float32)
    out = data.random_erase(batch, np.random.default_rng(11), probability, **ALWAYS_FITS)
    erased = np.mean([box is not None for box in erased_boxes(batch, out, 0.0)])
    sigma = math.sqrt(probability * (1 - probability) / len(batch))
    assert abs(erased - probability) <= 4 * sigma + 1e-12, erased


def test_augment_erases_last_from_the_batch_rng_and_only_when_asked():
    batch = np.random.default_rng(0).random((32, 28, 28, 1), dtype=np.float32)
    erasing = dict(TORCHVISION)
    recipe = make_recipe(horizontal_flip=True, translate=2, random_erasing=erasing, seed=5)
    out = augment(batch, recipe, epoch=3, index=4)
    rng = np.random.default_rng([5, 3, 4, 1])  # the documented generator of (seed, epoch, batch index)
    expected = data.random_erase(data.random_translate(data.random_flip_horizontal(batch, rng), rng, 2), rng, **erasing)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(augment(batch, recipe, epoch=3, index=4), out)
    for epoch, index in ((3, 5), (4, 4)):
        assert not np.array_equal(augment(batch, recipe, epoch=epoch, index=index), out)
    without = make_recipe(horizontal_flip=True, translate=2, seed=5)
    assert recipe.augments and not make_recipe().augments
    assert make_recipe(random_erasing=erasing).augments
    rng = np.random.default_rng([5, 3, 4, 1])
    flipped_and_shifted = data.random_translate(data.random_flip_horizontal(batch, rng), rng, 2)
    np.testing.assert_array_equal(augment(batch, without, epoch=3, index=4), flipped_and_shifted)
