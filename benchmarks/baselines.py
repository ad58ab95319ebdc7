"""The baseline loops, written the way the source projects wrote them.

PyTorch: torchvision `FashionMNIST` with a per-sample `ToTensor()` through a `DataLoader`. Keras: `model.fit` on numpy
arrays with `validation_split`. Both train the generated package's model with the spec's optimizer on the same images
(the same train/validation split, drawn from the recipe's seed) as the generated loops.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import time
from pathlib import Path
from types import ModuleType

import numpy as np

from dsl.dataset import TRAINING_IMAGES
from runtime.common.constants import EVAL_BATCH
from runtime.common.data import CHECKSUMS, DataError, FashionMNIST, cache_dir, find_data_dir, make_splits
from runtime.common.recipe import Recipe, load_splits
from runtime.common.rules import scheduled_lr
from runtime.common.rundir import replace_atomically


def torchvision_root(data_dir: str | None = None, root: Path | None = None) -> Path:
    """A root torchvision's FashionMNIST reads offline: ROOT/FashionMNIST/raw/ holds the four decompressed files."""
    source = find_data_dir(data_dir)
    root = root or cache_dir().parent / "torchvision"
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name, (_, sha256, size) in CHECKSUMS.items():
        target = raw / name.removesuffix(".gz")
        if target.is_file() and target.stat().st_size == size:
            continue
        data = gzip.decompress((source / name).read_bytes())
        if hashlib.sha256(data).hexdigest() != sha256:
            raise DataError(f"{source / name}: checksum mismatch after decompression")
        replace_atomically(target, lambda tmp, data=data: tmp.write_bytes(data))
    return root


def split_indices(recipe: Recipe, train_limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training and validation images the generated loops use (runtime.common.data.make_splits)."""
    index = np.arange(TRAINING_IMAGES)
    empty = index[:0]
    splits = make_splits(
        FashionMNIST(index, index, empty, empty),
        validation_fraction=recipe.validation_split,
        seed=recipe.seed,
        train_limit=train_limit,
    )
    return splits.x_train, splits.x_val


def _torch_epoch(model, loader, optimizer, loss_fn, device) -> tuple[float, float]:
    """One epoch as the source projects wrote it: move each batch, step, read the loss back every batch."""
    model.train()
    running_loss, correct, seen = 0.0, 0, 0
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        optimizer.zero_grad()
        outputs = model(images)
        loss = loss_fn(outputs, labels)
        loss.backward()
        optimizer.step()
        running_loss += loss.item() * len(labels)
        correct += (outputs.argmax(1) == labels).sum().item()
        seen += len(labels)
    return running_loss / seen, correct / seen


def _torch_accuracy(model, loader, device) -> float:
    """Accuracy over a loader in eval mode."""
    import torch

    model.eval()
    correct, seen = 0, 0
    with torch.no_grad():
        for images, labels in loader:
            outputs = model(images.to(device))
            correct += (outputs.argmax(1).cpu() == labels).sum().item()
            seen += len(labels)
    return correct / max(seen, 1)


def torch_baseline(package: ModuleType, recipe: Recipe, train_limit: int | None, root: Path) -> dict:
    """Train with ToTensor() + DataLoader(shuffle=True); per-epoch seconds of the training pass and test accuracy."""
    import torch
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    from runtime.torch.losses import loss_function as torch_loss

    train_idx, val_idx = split_indices(recipe, train_limit)
    full = datasets.FashionMNIST(root, train=True, download=False, transform=transforms.ToTensor())
    test = datasets.FashionMNIST(root, train=False, download=False, transform=transforms.ToTensor())
    train_loader = DataLoader(Subset(full, train_idx.tolist()), batch_size=recipe.batch_size, shuffle=True)
    val_loader = DataLoader(Subset(full, val_idx.tolist()), batch_size=EVAL_BATCH)
    torch.manual_seed(recipe.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = package.build_torch_model().to(device)
    opt = recipe.optimizer
    optimizer = torch.optim.SGD(
        model.parameters(), lr=opt["learning_rate"], momentum=opt["momentum"], nesterov=opt["nesterov"]
    )
    loss_fn = torch_loss(package.OUTPUT)
    seconds = []
    for epoch in range(recipe.epochs):
        for group in optimizer.param_groups:
            group["lr"] = scheduled_lr(recipe, epoch)  # the spec's step or cosine schedule, as the generated loop
        start = time.perf_counter()
        _torch_epoch(model, train_loader, optimizer, loss_fn, device)
        seconds.append(time.perf_counter() - start)
        if len(val_idx):
            _torch_accuracy(model, val_loader, device)  # validation each epoch, outside the timed pass
    accuracy = _torch_accuracy(model, DataLoader(test, batch_size=EVAL_BATCH), device)
    return {"epoch_seconds": seconds, "train_samples": len(train_idx), "test_accuracy": accuracy}


def _epoch_timer():
    """A Keras callback timing each epoch's training pass (first batch begin to last batch end), as the
    generated loop's Recorder does."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch: int, logs=None) -> None:
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch: int, logs=None) -> None:
            self.end = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs=None) -> None:
            self.seconds.append(self.end - self.start)

    return EpochTimer()


def keras_baseline(package: ModuleType, recipe: Recipe, train_limit: int | None) -> dict:
    """Train with model.fit(x, y, validation_split=...) on numpy arrays and Keras's own SGD and loss."""
    import keras

    splits = load_splits(recipe, None, train_limit)
    x = np.concatenate([splits.x_train, splits.x_val])
    y = np.concatenate([splits.y_train, splits.y_val])
    # Keras keeps floor(n * (1 - split)) for training; half an image less of validation makes that exactly len(train).
    validation_split = (len(splits.y_val) - 0.5) / len(y) if len(splits.y_val) else 0.0
    keras.utils.set_random_seed(recipe.seed)
    model = package.build_keras_model()
    opt = recipe.optimizer
    model.compile(
        optimizer=keras.optimizers.SGD(
            learning_rate=opt["learning_rate"], momentum=opt["momentum"], nesterov=opt["nesterov"]
        ),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    timer = _epoch_timer()
    model.fit(
        x,
        y,
        batch_size=recipe.batch_size,
        epochs=recipe.epochs,
        validation_split=validation_split,
        callbacks=[keras.callbacks.LearningRateScheduler(lambda epoch, lr: scheduled_lr(recipe, epoch)), timer],
        verbose=0,
    )
    _, accuracy = model.evaluate(splits.x_test, splits.y_test, batch_size=EVAL_BATCH, verbose=0)
    train_samples = math.floor(len(y) * (1 - validation_split))  # Keras's own cut
    return {"epoch_seconds": timer.seconds, "train_samples": train_samples, "test_accuracy": float(accuracy)}
