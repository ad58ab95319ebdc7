"""The Keras loop feeds model.fit runtime.common.data.batch_order's batches, in that order; its compile choices.

Runs on the default backend here, and on jax and torch from tests/functional/test_backends.py.
"""

from runtime.common.frameworks import guard_triton

guard_triton()
import torch  # noqa: E402,F401  -- before Keras, see runtime/common/frameworks.py

# isort: split
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from runtime.common import recipe as recipe_module  # noqa: E402
from runtime.common.data import batch_order  # noqa: E402
from runtime.keras import training as keras_training  # noqa: E402
from tests.recipes import ERASE_EVERY_IMAGE, make_recipe  # noqa: E402

RECIPE = make_recipe(optimizer={"name": "sgd"}, batch_size=8, epochs=2, seed=3)
BACKEND = keras.backend.backend()
# The feed each backend trains with when nothing is augmented, and the other feeds it can run.
FASTEST = {
    "tensorflow": keras_training.GraphBatches,
    "jax": keras_training.DeviceBatches,
    "torch": keras_training.Batches,
}
FEEDS = sorted({keras_training.Batches, FASTEST[BACKEND]}, key=lambda feed: feed.__name__)


def _labels_seen_by_fit(feed) -> list[np.ndarray]:
    """The label batches model.fit trains on, in order, recorded by an eagerly run loss."""
    seen = []

    class ForgetBuild(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen.clear()  # the torch backend calls the loss once on placeholder labels, to build it

    def recording_loss(labels, output):
        try:
            seen.append(keras.ops.convert_to_numpy(labels).astype(np.int64).ravel())  # Keras passes (n, 1)
        except TypeError:  # jax traces the loss once, for its output's shape: a tracer holds no values
            pass
        return keras.ops.mean(output) * 0.0

    model = keras.Sequential([keras.Input((2, 2, 1)), keras.layers.Flatten(), keras.layers.Dense(1)])
    model.compile("sgd", recording_loss, run_eagerly=True, steps_per_execution=keras_training.steps_per_execution())
    model.fit(
        **keras_training.fit_inputs(feed),
        epochs=RECIPE.epochs,
        callbacks=[ForgetBuild(), keras_training.EpochOrder(feed)],
        verbose=0,
    )
    return seen


@pytest.mark.parametrize("feed", FEEDS)
def test_fit_trains_on_batch_order(feed) -> None:
    count = 50
    images, labels = np.zeros((count, 2, 2, 1), np.float32), np.arange(count)
    seen = _labels_seen_by_fit(feed(images, labels, RECIPE))
    expected = [batch for epoch in range(RECIPE.epochs) for batch in batch_order(count, 8, epoch, RECIPE.seed)]
    assert len(seen) == len(expected) == 14
    assert all(np.array_equal(s, e) for s, e in zip(seen, expected, strict=True))


def test_the_backends_fastest_feed_is_used_without_augmentation() -> None:
    images, labels = np.zeros((4, 2, 2, 1), np.float32), np.arange(4)
    assert type(keras_training.training_batches(images, labels, RECIPE)) is FASTEST[BACKEND]
    flipped = make_recipe(optimizer={"name": "sgd"}, horizontal_flip=True)
    assert type(keras_training.training_batches(images, labels, flipped)) is keras_training.Batches
    erased = make_recipe(optimizer={"name": "sgd"}, random_erasing=ERASE_EVERY_IMAGE)
    batches = keras_training.training_batches(images + 1.0, labels, erased)
    assert type(batches) is keras_training.Batches and np.any(batches[0][0] == 0), "erased in the portable feed"


def _one_epoch(jit: str) -> tuple[bool, list[np.ndarray], list[np.ndarray]]:
    """A small conv model's weights before and after one epoch from seed 0; whether Keras compiled its step with XLA."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        keras.optimizers.SGD(0.1, momentum=0.9),
        "sparse_categorical_crossentropy",
        steps_per_execution=keras_training.steps_per_execution(),
        jit_compile=keras_training.jit_compile(jit),
    )
    initial = model.get_weights()
    rng = np.random.default_rng(0)
    images, labels = rng.random((64, 8, 8, 1), dtype=np.float32), np.arange(64) % 10
    feed = keras_training.training_batches(images, labels, RECIPE)
    model.fit(**keras_training.fit_inputs(feed), epochs=1, callbacks=[keras_training.EpochOrder(feed)], verbose=0)
    return model.jit_compile, initial, model.get_weights()


@pytest.mark.skipif(BACKEND == "torch", reason="Keras's torch backend compiles through torch.compile, not XLA")
def test_jit_compile_on_compiles_with_xla_and_trains_to_the_same_weights() -> None:
    chosen = recipe_module.parse_options(["--jit-compile", "on"], RECIPE, run_dir="runs/x", framework="keras")
    assert chosen.jit_compile == "on"
    assert recipe_module.parse_options([], RECIPE, run_dir="runs/x", framework="keras").jit_compile == "auto"
    xla, start, compiled = _one_epoch("on")
    graph, same_start, plain = _one_epoch("off")
    assert xla and not graph
    assert all(np.array_equal(a, b) for a, b in zip(start, same_start, strict=True))
    assert max(np.abs(a - b).max() for a, b in zip(plain, start, strict=True)) > 1e-3  # it trained
    for a, b in zip(compiled, plain, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
