"""Facts about the data every trained spec learns from, Fashion-MNIST: defined here once, imported by dsl's checks
and by runtime (the loader, the losses, the metrics), so that the spec language and the code agree."""

# fmt: off
CLASS_NAMES: tuple[str, ...] = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
# fmt: on
NUM_CLASSES = len(CLASS_NAMES)
IMAGE_SHAPE = (28, 28, 1)  # height, width, channels
TRAINING_IMAGES = 60_000  # the official training set, the pool every validation and carved split comes from
TEST_IMAGES = 10_000
