"""The PyTorch loop steps on runtime.common.data.batch_order's batches, in order; each process on its share of them."""

from types import SimpleNamespace

from runtime.common.frameworks import guard_triton

guard_triton()
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from runtime.common import replicas  # noqa: E402
from runtime.common.data import batch_order  # noqa: E402
from runtime.common.layouts import to_channels_first  # noqa: E402
from runtime.common.recipe import augment  # noqa: E402
from runtime.torch import training as torch_training  # noqa: E402
from tests.recipes import ERASE_EVERY_IMAGE, make_recipe  # noqa: E402

COUNT, BATCH = 50, 8


class RecordingStep:
    """Stands in for runtime.torch.step.TrainStep: records the labels and images of every batch it is given."""

    def __init__(self, process_index: int, num_processes: int) -> None:
        self.accelerator = SimpleNamespace(process_index=process_index, num_processes=num_processes)
        self.model = torch.nn.Identity()
        self.total_loss, self.correct = torch.zeros(()), torch.zeros(())
        self.seen: list[tuple[np.ndarray, np.ndarray]] = []

    def reset_totals(self) -> None:
        self.seen.clear()

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.seen.append((x.numpy(), y.numpy()))


@pytest.mark.parametrize(("process_index", "num_processes"), [(0, 1), (1, 2)])
@pytest.mark.parametrize("flip", [False, True])
def test_each_process_steps_on_its_share_of_batch_order(process_index: int, num_processes: int, flip: bool) -> None:
    recipe = make_recipe(optimizer={"name": "sgd"}, batch_size=BATCH, epochs=2, seed=3, horizontal_flip=flip)
    images = np.arange(COUNT * 4, dtype=np.float32).reshape(COUNT, 2, 2, 1)  # image i holds 4i .. 4i+3
    data = torch_training._Data(images, np.arange(COUNT), torch.device("cpu"))
    step = RecordingStep(process_index, num_processes)
    for epoch in range(recipe.epochs):
        torch_training._train_epoch(step, data, recipe, epoch, progress=False)
        order = batch_order(COUNT, BATCH, epoch, recipe.seed)
        expected = [replicas.share(idx, process_index, num_processes) for idx in replicas.trim(order, num_processes)]
        assert len(step.seen) == len(expected) == 7
        for (x, y), idx in zip(step.seen, expected, strict=True):
            np.testing.assert_array_equal(y, idx)
            np.testing.assert_array_equal(np.sort(x.reshape(len(idx), 4), axis=1) // 4, np.repeat(idx[:, None], 4, 1))


def test_erased_batches_are_the_shared_augmentations() -> None:
    """Random erasing alone turns the numpy-side augmentation on: each step sees augment()'s batch, as Keras's does."""
    recipe = make_recipe(
        optimizer={"name": "sgd"}, batch_size=BATCH, epochs=2, seed=3, random_erasing=ERASE_EVERY_IMAGE
    )
    images = np.random.default_rng(0).random((COUNT, 8, 8, 1), dtype=np.float32) + 1.0
    data = torch_training._Data(images, np.arange(COUNT), torch.device("cpu"))
    step = RecordingStep(0, 1)
    for epoch in range(recipe.epochs):
        torch_training._train_epoch(step, data, recipe, epoch, progress=False)
        for index, ((x, y), idx) in enumerate(zip(step.seen, batch_order(COUNT, BATCH, epoch, 3), strict=True)):
            np.testing.assert_array_equal(y, idx)
            np.testing.assert_array_equal(x, to_channels_first(augment(images[idx], recipe, epoch, index)))
            assert np.all((x == 0).any(axis=(1, 2, 3))), "every image has its rectangle"
