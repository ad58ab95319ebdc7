"""The Keras loop's feeds give model.fit runtime.data.batch_order's batches, in that order; its compile choices."""

from runtime.frameworks import guard_triton

guard_triton()
import torch  # noqa: E402,F401  -- before Keras, see runtime/frameworks.py

# isort: split
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from runtime import keras_training  # noqa: E402
from runtime import training as tr  # noqa: E402
from runtime.data import batch_order  # noqa: E402

RECIPE = tr.Recipe(optimizer={"name": "sgd"}, batch_size=8, epochs=2, seed=3)


def _labels_seen_by_fit(feed: keras_training.Batches | keras_training.GraphBatches) -> list[np.ndarray]:
    """The label batches model.fit trains on, in order, recorded by an eagerly run loss."""
    seen = []

    def recording_loss(labels, output):
        seen.append(keras.ops.convert_to_numpy(labels).astype(np.int64).ravel())  # Keras passes (n, 1)
        return keras.ops.mean(output) * 0.0

    model = keras.Sequential([keras.Input((2, 2, 1)), keras.layers.Flatten(), keras.layers.Dense(1)])
    model.compile("sgd", recording_loss, run_eagerly=True, steps_per_execution=keras_training.STEPS_PER_EXECUTION)
    model.fit(
        **keras_training.fit_inputs(feed), epochs=RECIPE.epochs, callbacks=[keras_training.EpochOrder(feed)], verbose=0
    )
    return seen


@pytest.mark.parametrize("feed", [keras_training.Batches, keras_training.GraphBatches])
def test_fit_trains_on_batch_order(feed) -> None:
    count = 50
    images, labels = np.zeros((count, 2, 2, 1), np.float32), np.arange(count)
    seen = _labels_seen_by_fit(feed(images, labels, RECIPE))
    expected = [batch for epoch in range(RECIPE.epochs) for batch in batch_order(count, 8, epoch, RECIPE.seed)]
    assert len(seen) == len(expected) == 14
    assert all(np.array_equal(s, e) for s, e in zip(seen, expected, strict=True))


def test_the_graph_feed_is_used_on_tensorflow_without_augmentation() -> None:
    images, labels = np.zeros((4, 2, 2, 1), np.float32), np.arange(4)
    assert isinstance(keras_training.training_batches(images, labels, RECIPE), keras_training.GraphBatches)
    flipped = tr.Recipe(optimizer={"name": "sgd"}, horizontal_flip=True)
    assert isinstance(keras_training.training_batches(images, labels, flipped), keras_training.Batches)
